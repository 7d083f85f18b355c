build/lib/error.o: lib/error.c include/slate/error.h
include/slate/error.h:
