{{header}}
        bits 64
        global {{entry}}

        section .text align=16
{{text}}{{rodata}}{{data}}{{bss}}
        ; An empty note that asks for a non-executable stack (PT_GNU_STACK RW).
        section .note.GNU-stack noalloc noexec nowrite progbits
