// Memory planning: assigns each temporary of a plan to a scratch buffer, reusing a buffer of
// the same shape class once its previous temporary is dead (interval colouring over kernel
// indices). Values inside one kernel live in registers and need no buffer.
#pragma once
#include "compiler/plan.h"

namespace opal::passes {
Plan plan_memory(Plan p);
}
