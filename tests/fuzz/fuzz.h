/*
 * fuzz.h - what the libFuzzer harnesses in tests/fuzz/ share.
 */
#ifndef HK_FUZZ_H
#define HK_FUZZ_H

#include <stdio.h>
#include <stdlib.h>

/* A property the code promised and broke: a crash libFuzzer keeps. */
#define require(cond)                                                          \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__,     \
			    #cond);                                            \
			abort();                                               \
		}                                                              \
	} while (0)

#endif
