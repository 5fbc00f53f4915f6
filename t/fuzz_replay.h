/* The replay side of the fuzz targets: without libFuzzer each target is a
 * program that runs its input function over a committed corpus, so that
 * `make check` exercises it. */
#ifndef CRIC_T_FUZZ_REPLAY_H
#define CRIC_T_FUZZ_REPLAY_H

#include <stddef.h>

/** Calls fn on the contents of every file under the paths argv[1..argc-1]
 * or, with none, under $CRIC_SRCDIR/<corpus> (default srcdir "."):
 * directories are walked in name order, dot files skipped; a file larger than
 * max_size is an error.  fn may change buf.  Stops at the first path it cannot
 * read, with a message on stderr (prefixed by name).  Returns the number of
 * files run, or -1. */
long fuzz_replay(const char *name, const char *corpus, size_t max_size, int argc, char **argv,
                 void (*fn)(char *buf, size_t len));

#endif
