# Owned by the Jinja work: sources of the chat-template interpreter and its tests.
set(MOXIE_JINJA_SOURCES
  ${CMAKE_SOURCE_DIR}/src/formats/jinja/builtins.cc
  ${CMAKE_SOURCE_DIR}/src/formats/jinja/filters.cc
  ${CMAKE_SOURCE_DIR}/src/formats/jinja/interp.cc
  ${CMAKE_SOURCE_DIR}/src/formats/jinja/jinja.cc
  ${CMAKE_SOURCE_DIR}/src/formats/jinja/lexer.cc
  ${CMAKE_SOURCE_DIR}/src/formats/jinja/parser.cc
  ${CMAKE_SOURCE_DIR}/src/formats/jinja/pystring.cc
  ${CMAKE_SOURCE_DIR}/src/formats/jinja/value.cc
)
set(MOXIE_JINJA_TEST_SOURCES
  ${CMAKE_SOURCE_DIR}/src/formats/jinja/jinja_test.cc
)
