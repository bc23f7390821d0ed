// Imported by main.mjs: a module graph of two files, both served as JavaScript.
export function greeting() {
  return 'module ran';
}
