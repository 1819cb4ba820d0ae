# Fails when a library source (.cpp/.hpp under loader/, ipc/, datasets/, core/) is over MAX
# lines: a file a newcomer can read at one sitting does one job.
file(GLOB_RECURSE sources RELATIVE ${SRC}
     ${SRC}/loader/*.cpp ${SRC}/loader/*.hpp ${SRC}/ipc/*.cpp ${SRC}/ipc/*.hpp
     ${SRC}/datasets/*.cpp ${SRC}/datasets/*.hpp ${SRC}/core/*.cpp ${SRC}/core/*.hpp)
set(too_long "")
foreach(f IN LISTS sources)
  file(STRINGS ${SRC}/${f} lines)
  list(LENGTH lines n)
  if(n GREATER MAX)
    string(APPEND too_long "\n  ${f}: ${n} lines")
  endif()
endforeach()
if(too_long)
  message(FATAL_ERROR "over ${MAX} lines (split the file by job):${too_long}")
endif()
