// Precompiled header for src/model: LibTorch's heavy headers, parsed once per build.
#pragma once
#include <torch/script.h>
