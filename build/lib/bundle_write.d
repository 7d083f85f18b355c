build/lib/bundle_write.o: lib/bundle_write.c include/slate/bundle.h \
 include/slate/error.h include/slate/hash.h include/slate/manifest.h \
 include/slate/sign.h include/slate/util.h
include/slate/bundle.h:
include/slate/error.h:
include/slate/hash.h:
include/slate/manifest.h:
include/slate/sign.h:
include/slate/util.h:
