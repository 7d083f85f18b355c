build/lib/path.o: lib/path.c include/slate/path.h include/slate/error.h \
 include/slate/util.h
include/slate/path.h:
include/slate/error.h:
include/slate/util.h:
