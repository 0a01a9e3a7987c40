#include "config/plan_yaml.h"
