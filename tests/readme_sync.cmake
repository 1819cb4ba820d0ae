# Fails when README.md does not contain EXAMPLE (a quick start) verbatim.
file(READ ${README} readme)
file(READ ${EXAMPLE} example)
string(FIND "${readme}" "${example}" pos)
if(pos EQUAL -1)
  message(FATAL_ERROR "README.md does not contain ${EXAMPLE} verbatim: paste it into the example block")
endif()
