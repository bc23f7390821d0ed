// Loaded by index.html as <script type="module">: a browser runs it only when
// it comes with a JavaScript media type. It writes what it did into the page.
import { greeting } from './greet.mjs';

document.getElementById('out').textContent = greeting();

fetch('/data.json')
  .then((r) => r.json())
  .then((d) => { document.getElementById('data').textContent = 'data: ' + d.message; })
  .catch((e) => { document.getElementById('data').textContent = 'data failed: ' + e; });

const images = [...document.images];
Promise.all(images.map((img) => img.decode().then(() => true, () => false))).then((ok) => {
  const bad = images.filter((_, i) => !ok[i]).map((img) => img.alt);
  document.getElementById('images').textContent =
    'images decoded: ' + (images.length - bad.length) + '/' + images.length + (bad.length ? ' (failed: ' + bad.join(' ') + ')' : '');
});
