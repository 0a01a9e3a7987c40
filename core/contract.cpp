#include "core/contract.h"
