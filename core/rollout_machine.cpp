#include "core/rollout_machine.h"
