build/lib/sign.o: lib/sign.c include/slate/hash.h include/slate/error.h \
 include/slate/sign.h include/slate/util.h
include/slate/hash.h:
include/slate/error.h:
include/slate/sign.h:
include/slate/util.h:
