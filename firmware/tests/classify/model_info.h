/* The core test's classifier (core_test_classify): the same fixed model as
 * tests/model_info.h, declared a classifier of two classes, one of them with a label
 * that needs encoding on the wire (a space, sent as %20). */
#ifndef CLASSIFY_MODEL_INFO_H
#define CLASSIFY_MODEL_INFO_H

#include "../model_info.h"

#define MODEL_CLASS_COUNT 2
#define MODEL_LABEL_MAX_BYTES 9
#define MODEL_LABELS_BYTES 14
#define MODEL_LABELS(LABEL) LABEL("cat") LABEL("red%20fox")

#endif
