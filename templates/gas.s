{{header}}
        .intel_syntax noprefix
        .globl {{entry}}

        .text
        .balign 16                      # as NASM aligns .text: both put the code at one address
{{text}}{{rodata}}{{data}}{{bss}}
        # An empty note that asks for a non-executable stack (PT_GNU_STACK RW).
        .section .note.GNU-stack,"",@progbits
