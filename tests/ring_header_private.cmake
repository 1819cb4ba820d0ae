# Fails when code outside ipc/ (and its tests) reaches the ring's shared header: "abandon an
# epoch" and every other step of the slot protocol go through SlotRing's operations only.
file(GLOB_RECURSE sources RELATIVE ${SRC}
     ${SRC}/loader/*.cpp ${SRC}/loader/*.hpp ${SRC}/datasets/*.cpp ${SRC}/datasets/*.hpp
     ${SRC}/core/*.cpp ${SRC}/core/*.hpp ${SRC}/python/src/*.cpp ${SRC}/python/src/*.hpp
     ${SRC}/examples/*.cpp ${SRC}/examples/*.hpp)
set(found "")
foreach(f IN LISTS sources)
  file(STRINGS ${SRC}/${f} hits REGEX "ring_header\\.hpp|RingHeader|SlotRingTestAccess")
  if(hits)
    string(APPEND found "\n  ${f}")
  endif()
endforeach()
if(found)
  message(FATAL_ERROR "the ring's header is ipc/'s own (ipc/detail/ring_header.hpp); reached from:${found}")
endif()
