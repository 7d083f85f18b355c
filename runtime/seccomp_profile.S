/* slate: runtime/seccomp-default.json, embedded in the binary so that the
 * default seccomp profile cannot be swapped on disk behind slate's back.
 * Exports slate_seccomp_profile_start and slate_seccomp_profile_end (one
 * past the last byte; the data is not NUL-terminated). The path is
 * relative to the repository root, where make runs. */
	.section .rodata.slate_seccomp_profile, "a", @progbits
	.balign 16
	.globl slate_seccomp_profile_start
	.hidden slate_seccomp_profile_start
	.type slate_seccomp_profile_start, @object
slate_seccomp_profile_start:
	.incbin "runtime/seccomp-default.json"
	.globl slate_seccomp_profile_end
	.hidden slate_seccomp_profile_end
	.type slate_seccomp_profile_end, @object
slate_seccomp_profile_end:
	.byte 0
	.size slate_seccomp_profile_start, slate_seccomp_profile_end - slate_seccomp_profile_start
	.size slate_seccomp_profile_end, 1

	.section .note.GNU-stack, "", @progbits
