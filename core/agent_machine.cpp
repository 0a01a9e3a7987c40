#include "core/agent_machine.h"
