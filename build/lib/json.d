build/lib/json.o: lib/json.c include/slate/json.h include/slate/error.h \
 include/slate/util.h
include/slate/json.h:
include/slate/error.h:
include/slate/util.h:
