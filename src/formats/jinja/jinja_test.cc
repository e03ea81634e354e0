// Tests of the chat-template interpreter land here with it (work in progress).
#include <gtest/gtest.h>
