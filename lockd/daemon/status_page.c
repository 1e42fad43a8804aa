/* The status page at / (http_api.h): plain HTML and a little JavaScript,
 * no build step. */
#include "http_api.h"

#pragma GCC diagnostic ignored "-Woverlength-strings"

const char ld_status_page[] = "<!doctype html><title>lockd</title>\n";
