# ringloader_enable_warnings(target): the project's warning set, on one target only.
function(ringloader_enable_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wshadow -Wnon-virtual-dtor
                                           -Wold-style-cast -Wcast-align -Wnull-dereference)
endfunction()

# ringloader_add_module(name SOURCES ... HEADERS ... DEPS ...): one library per module folder,
# aliased ringloader::<name>, headers installed under include/ringloader/<name>/.
function(ringloader_add_module name)
  cmake_parse_arguments(ARG "" "" "SOURCES;HEADERS;PUBLIC_DEPS;PRIVATE_DEPS" ${ARGN})
  add_library(ringloader_${name} ${ARG_SOURCES})
  add_library(ringloader::${name} ALIAS ringloader_${name})
  set_target_properties(ringloader_${name} PROPERTIES EXPORT_NAME ${name} POSITION_INDEPENDENT_CODE ON)
  target_compile_features(ringloader_${name} PUBLIC cxx_std_20)
  target_include_directories(ringloader_${name} PUBLIC
    $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}/ringloader>)
  target_link_libraries(ringloader_${name} PUBLIC ${ARG_PUBLIC_DEPS} PRIVATE ${ARG_PRIVATE_DEPS})
  ringloader_enable_warnings(ringloader_${name})
  ringloader_sanitize(ringloader_${name})
  if(RINGLOADER_INSTALL)
    install(TARGETS ringloader_${name} EXPORT ringloaderTargets
            ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
            LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
    foreach(h ${ARG_HEADERS})
      get_filename_component(dir ${h} DIRECTORY)
      install(FILES ${h} DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/ringloader/${name}/${dir})
    endforeach()
  endif()
endfunction()
