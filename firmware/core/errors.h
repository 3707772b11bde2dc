/* The ERR codes of serial protocol v1: the one table. The core answers with these names;
 * tests/test_error_codes.py reads this table and checks the Python client's
 * ErrorCode (pipeline/device/serial_client.py) and docs/protocol.md's "Errors" table
 * against it, so the three cannot drift. Keep one X(...) per line. */
#ifndef ERRORS_H
#define ERRORS_H

/* X(name, code, meaning): meaning is the docs table's wording. */
#define PROTO_ERRORS(X)                                                    \
  X(EMPTY_LINE, 1, "empty line")                                           \
  X(LINE_TOO_LONG, 2, "line too long")                                     \
  X(BAD_NUMBER, 3, "a value is not a number, or out of float range")       \
  X(WRONG_COUNT, 4, "wrong number of values or codes")                     \
  X(BAD_CODE, 5, "a code is not an integer in -128..127")                  \
  X(UNKNOWN_COMMAND, 6, "unknown command")                                 \
  X(ENGINE, 7, "the engine failed (allocation or invoke)")                 \
  X(BAD_ARGUMENT, 8, "bad argument to a command")

typedef enum {
#define PROTO_ERR_ENUM_(name, code, meaning) PROTO_ERR_##name = code,
  PROTO_ERRORS(PROTO_ERR_ENUM_)
#undef PROTO_ERR_ENUM_
} proto_err_t;

/* Every error answer starts so; no other answer and no request does, which is how an
 * echoed error line is told from a request (docs/protocol.md, "Echo"). */
#define PROTO_ERR_PREFIX "ERR "

#endif
