{{header}}
        bits 64
        global {{entry}}

        section .text
{{text}}
        section .rodata
{{rodata}}
        section .data
{{data}}
        section .bss
{{bss}}
        ; An empty note that asks for a non-executable stack (PT_GNU_STACK RW).
        section .note.GNU-stack noalloc noexec nowrite progbits
