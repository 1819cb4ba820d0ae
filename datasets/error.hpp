#pragma once
// Kept so that code written against earlier releases still compiles: the error hierarchy
// lives in core/error.hpp now.
#include "core/error.hpp"
