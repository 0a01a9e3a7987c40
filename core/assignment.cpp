#include "core/assignment.h"
