build/lib/bundle_read.o: lib/bundle_read.c include/slate/bundle.h \
 include/slate/error.h include/slate/hash.h include/slate/manifest.h \
 include/slate/sign.h include/slate/path.h include/slate/util.h
include/slate/bundle.h:
include/slate/error.h:
include/slate/hash.h:
include/slate/manifest.h:
include/slate/sign.h:
include/slate/path.h:
include/slate/util.h:
