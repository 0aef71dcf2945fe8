// Python's html.unescape on code points (internal).
#pragma once

#include <string>
#include <string_view>

namespace zsclip::text {

// html.unescape(text): named references from HTML5's table (with and without ';', the longest
// known prefix for names without it), decimal/hex references with Python's remapping.
std::u32string html_unescape(std::u32string_view text);

}  // namespace zsclip::text
