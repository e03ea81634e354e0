# Owned by the Jinja work: sources of the chat-template interpreter and its tests.
set(MOXIE_JINJA_SOURCES
  ${CMAKE_SOURCE_DIR}/src/formats/jinja/jinja.cc
)
set(MOXIE_JINJA_TEST_SOURCES
  ${CMAKE_SOURCE_DIR}/src/formats/jinja/jinja_test.cc
)
