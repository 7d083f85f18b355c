build/lib/manifest.o: lib/manifest.c include/slate/json.h \
 include/slate/error.h include/slate/util.h include/slate/manifest.h \
 include/slate/hash.h include/slate/path.h
include/slate/json.h:
include/slate/error.h:
include/slate/util.h:
include/slate/manifest.h:
include/slate/hash.h:
include/slate/path.h:
