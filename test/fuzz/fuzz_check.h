/* fuzz_check.h: the fuzz targets' assertion: a failed property aborts, so libFuzzer keeps the input. */
#ifndef TSORACLE_FUZZ_CHECK_H
#define TSORACLE_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>

/* Unlike assert(), never compiled out. */
#define FUZZ_CHECK(cond)                                                                                     \
	do {                                                                                                 \
		if (!(cond)) {                                                                               \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);             \
			abort();                                                                             \
		}                                                                                            \
	} while (0)

#endif /* TSORACLE_FUZZ_CHECK_H */
