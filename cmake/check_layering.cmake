# The architecture's include rules (docs/architecture.md), checked on every build: a source file
# that includes a header of a part it may not depend on fails the build, naming both.
#   cmake -DROOT=<source dir> -DSTAMP=<file to touch on success> -P check_layering.cmake
#
# Each rule: a folder, `|`, then the include prefixes its files may use, separated by commas.
set(rules
  "support|support/"
  "lang|support/,lang/"
  "compiler/exec/description|support/,compiler/exec/description.h,compiler/exec/kernel_abi.h"
  "compiler|support/,lang/,compiler/"
  "runtime|support/,runtime/,compiler/exec/description.h,compiler/exec/kernel_abi.h"
  "driver|support/,lang/,compiler/,runtime/,driver/"
  "bindings|support/,runtime/,driver/,compiler/exec/,bindings/"
  "ablate|support/,lang/,compiler/,runtime/,driver/,ablate/"
)
set(errors "")
foreach(rule ${rules})
  string(REPLACE "|" ";" parts "${rule}")
  string(REPLACE "," ";" parts "${parts}")
  list(GET parts 0 folder)
  set(allowed ${parts})
  list(REMOVE_AT allowed 0)
  string(REGEX REPLACE "/.*" "" top "${folder}")
  file(GLOB_RECURSE files "${ROOT}/${top}/*.cpp" "${ROOT}/${top}/*.h" "${ROOT}/${top}/*.inc")
  foreach(f ${files})
    file(RELATIVE_PATH rel "${ROOT}" "${f}")
    # the most specific rule owns a file: compiler/exec/description.* is not "compiler"
    if(NOT folder STREQUAL "compiler/exec/description" AND rel MATCHES "^compiler/exec/description\\.")
      continue()
    endif()
    if(NOT rel MATCHES "^${folder}[/.]")
      continue()
    endif()
    file(STRINGS "${f}" includes REGEX "^[ \t]*#[ \t]*include[ \t]+\"")
    foreach(line ${includes})
      string(REGEX REPLACE "^[ \t]*#[ \t]*include[ \t]+\"([^\"]+)\".*" "\\1" inc "${line}")
      if(NOT inc MATCHES "/")
        continue()  # a file beside it
      endif()
      set(ok FALSE)
      foreach(prefix ${allowed})
        string(LENGTH "${prefix}" n)
        string(SUBSTRING "${inc}" 0 ${n} head)
        if(head STREQUAL prefix)
          set(ok TRUE)
        endif()
      endforeach()
      if(NOT ok)
        string(APPEND errors "  ${rel} includes \"${inc}\": ${folder}/ may include only ${allowed}\n")
      endif()
    endforeach()
  endforeach()
endforeach()
if(errors)
  message(FATAL_ERROR "Include layering broken (docs/architecture.md):\n${errors}")
endif()
file(TOUCH "${STAMP}")
