{{header}}
        .intel_syntax noprefix
        .globl {{entry}}

        .text
{{text}}
        .section .rodata
{{rodata}}
        .data
{{data}}
        .bss
{{bss}}
        # An empty note that asks for a non-executable stack (PT_GNU_STACK RW).
        .section .note.GNU-stack,"",@progbits
