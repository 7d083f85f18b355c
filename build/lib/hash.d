build/lib/hash.o: lib/hash.c include/slate/hash.h include/slate/error.h \
 include/slate/util.h
include/slate/hash.h:
include/slate/error.h:
include/slate/util.h:
