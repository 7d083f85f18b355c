build/lib/util.o: lib/util.c include/slate/util.h include/slate/error.h
include/slate/util.h:
include/slate/error.h:
