{{header}}
        .intel_syntax noprefix
        .globl {{entry}}

        .text
{{text}}{{rodata}}{{data}}{{bss}}
        # An empty note that asks for a non-executable stack (PT_GNU_STACK RW).
        .section .note.GNU-stack,"",@progbits
