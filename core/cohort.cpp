#include "core/cohort.h"
