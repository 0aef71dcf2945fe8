// Header parsing for PNG (IHDR, chunk walk), JPEG (marker walk, SOF), BMP and WebP, from the
// formats' specifications.
#include "image/image_header.h"

#include <cstring>

namespace zsclip::detail {
namespace {

uint32_t be32(const uint8_t* p) {
  return (uint32_t{p[0]} << 24) | (uint32_t{p[1]} << 16) | (uint32_t{p[2]} << 8) | p[3];
}
uint16_t be16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }
uint32_t le32(const uint8_t* p) {
  return (uint32_t{p[3]} << 24) | (uint32_t{p[2]} << 16) | (uint32_t{p[1]} << 8) | p[0];
}
uint16_t le16(const uint8_t* p) { return static_cast<uint16_t>((p[1] << 8) | p[0]); }

void probe_png(const uint8_t* d, size_t n, HeaderInfo* h) {
  h->format = ImageFormat::kPng;
  if (n < 33 || std::memcmp(d + 12, "IHDR", 4) != 0 || be32(d + 8) != 13) {
    h->problem = n < 33 ? "truncated PNG header" : "PNG without an IHDR chunk";
    h->truncated = n < 33;
    return;
  }
  h->width = be32(d + 16);
  h->height = be32(d + 20);
  h->png_bit_depth = d[24];
  h->png_color_type = d[25];
  if (h->width == 0 || h->height == 0 || h->width > 0x7fffffff || h->height > 0x7fffffff) {
    h->problem = "PNG header declares an invalid size";
    return;
  }
  size_t pos = 8;
  bool idat = false;
  while (true) {
    if (n - pos < 12) {
      h->truncated = true;
      return;
    }
    const uint64_t len = be32(d + pos);
    const uint8_t* type = d + pos + 4;
    if (len > n - pos - 12) {
      h->truncated = true;
      return;
    }
    if (std::memcmp(type, "IDAT", 4) == 0) idat = true;
    if (std::memcmp(type, "iCCP", 4) == 0) h->png_has_iccp = true;
    if (std::memcmp(type, "PLTE", 4) == 0 && h->plte_size == 0) {
      h->plte_offset = pos + 8;
      h->plte_size = static_cast<size_t>(len);
    }
    if (std::memcmp(type, "eXIf", 4) == 0 && h->exif_size == 0) {
      h->exif_offset = pos + 8;
      h->exif_size = static_cast<size_t>(len);
    }
    if (std::memcmp(type, "IEND", 4) == 0) {
      if (!idat) h->problem = "PNG without image data (no IDAT chunk)";
      return;
    }
    pos += 12 + static_cast<size_t>(len);
  }
}

bool is_sof(uint8_t m) { return m >= 0xC0 && m <= 0xCF && m != 0xC4 && m != 0xC8 && m != 0xCC; }

void probe_jpeg(const uint8_t* d, size_t n, HeaderInfo* h) {
  h->format = ImageFormat::kJpeg;
  size_t pos = 2;
  bool sos_seen = false;
  while (true) {
    // Find the next marker (0xFF, fill bytes, then a code).
    while (pos < n && d[pos] != 0xFF) ++pos;  // libjpeg skips stray bytes (with a warning)
    while (pos < n && d[pos] == 0xFF) ++pos;
    if (pos >= n) {
      h->truncated = true;
      return;
    }
    const uint8_t m = d[pos++];
    if (m == 0xD9) {
      if (!sos_seen) h->problem = "JPEG without image data (no SOS segment)";
      if (h->width < 0) h->problem = "JPEG without a frame header (no SOF segment)";
      return;
    }
    if ((m >= 0xD0 && m <= 0xD7) || m == 0x01 || m == 0xD8) continue;
    if (n - pos < 2) {
      h->truncated = true;
      return;
    }
    const size_t len = be16(d + pos);
    if (len < 2) {
      h->problem = "JPEG segment with an invalid length";
      return;
    }
    if (len > n - pos) {
      h->truncated = true;
      return;
    }
    const uint8_t* seg = d + pos + 2;
    const size_t seg_len = len - 2;
    if (is_sof(m) && h->width < 0) {
      if (seg_len < 6) {
        h->problem = "JPEG frame header too short";
        return;
      }
      h->height = be16(seg + 1);
      h->width = be16(seg + 3);
      h->jpeg_components = seg[5];
      if (h->width == 0 || h->height == 0) {
        h->problem = "JPEG frame header declares a zero size";
        return;
      }
    } else if (m == 0xE1 && h->exif_size == 0 && seg_len > 6 &&
               std::memcmp(seg, "Exif\0\0", 6) == 0) {
      h->exif_offset = static_cast<size_t>(seg - d) + 6;
      h->exif_size = seg_len - 6;
    }
    pos += len;
    if (m == 0xDA) {
      sos_seen = true;
      // Entropy-coded data runs to the next marker that is neither a stuffed 0xFF00 nor RSTn.
      while (true) {
        const void* ff = pos < n ? std::memchr(d + pos, 0xFF, n - pos) : nullptr;
        pos = ff ? static_cast<size_t>(static_cast<const uint8_t*>(ff) - d) : n;
        if (pos + 1 >= n) {
          h->truncated = true;
          return;
        }
        const uint8_t b = d[pos + 1];
        if (b == 0x00 || (b >= 0xD0 && b <= 0xD7) || b == 0xFF) {
          pos += (b == 0xFF) ? 1 : 2;
          continue;
        }
        break;
      }
    }
  }
}

void probe_bmp(const uint8_t* d, size_t n, HeaderInfo* h) {
  h->format = ImageFormat::kBmp;
  if (n < 26) {
    h->truncated = true;
    h->problem = "truncated BMP header";
    return;
  }
  const uint32_t header_size = le32(d + 14);
  if (header_size == 12) {
    h->width = le16(d + 18);
    h->height = le16(d + 20);
  } else {
    h->width = static_cast<int32_t>(le32(d + 18));
    const int64_t hh = static_cast<int32_t>(le32(d + 22));
    h->height = hh < 0 ? -hh : hh;
  }
  if (h->width <= 0 || h->height <= 0) h->problem = "BMP header declares an invalid size";
}

void probe_webp(const uint8_t* d, size_t n, HeaderInfo* h) {
  h->format = ImageFormat::kWebp;
  if (n < 30) {
    h->truncated = true;
    h->problem = "truncated WebP header";
    return;
  }
  if (std::memcmp(d + 12, "VP8 ", 4) == 0) {
    h->width = le16(d + 26) & 0x3fff;
    h->height = le16(d + 28) & 0x3fff;
  } else if (std::memcmp(d + 12, "VP8L", 4) == 0) {
    const uint32_t bits = le32(d + 21);
    h->width = (bits & 0x3fff) + 1;
    h->height = ((bits >> 14) & 0x3fff) + 1;
  } else if (std::memcmp(d + 12, "VP8X", 4) == 0) {
    h->width = (d[24] | (d[25] << 8) | (d[26] << 16)) + 1;
    h->height = (d[27] | (d[28] << 8) | (d[29] << 16)) + 1;
  }
  if (le32(d + 4) > n - 8) h->truncated = true;
}

}  // namespace

HeaderInfo probe_header(const uint8_t* d, size_t n) {
  HeaderInfo h;
  static const uint8_t kPngSig[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  if (n >= 8 && std::memcmp(d, kPngSig, 8) == 0) {
    probe_png(d, n, &h);
  } else if (n >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF) {
    probe_jpeg(d, n, &h);
  } else if (n >= 2 && d[0] == 'B' && d[1] == 'M') {
    probe_bmp(d, n, &h);
  } else if (n >= 12 && std::memcmp(d, "RIFF", 4) == 0 && std::memcmp(d + 8, "WEBP", 4) == 0) {
    probe_webp(d, n, &h);
  } else if (n >= 4 && ((d[0] == 'I' && d[1] == 'I' && d[2] == 42 && d[3] == 0) ||
                        (d[0] == 'M' && d[1] == 'M' && d[2] == 0 && d[3] == 42))) {
    h.format = ImageFormat::kOther;  // TIFF
  } else if (n >= 3 && d[0] == 'P' && d[1] >= '1' && d[1] <= '6' &&
             (d[2] == ' ' || d[2] == '\n' || d[2] == '\r' || d[2] == '\t')) {
    h.format = ImageFormat::kOther;  // PNM
  }
  // Anything else stays kUnknown and never reaches OpenCV: its other decoders (JPEG 2000, OpenEXR,
  // GDAL, ...) are formats CLIP's Pillow pipeline does not need, and widen the attack surface.
  return h;
}

void png_without_iccp(const uint8_t* d, size_t n, std::vector<uint8_t>* out) {
  out->assign(d, d + 8);
  size_t pos = 8;
  while (n - pos >= 12) {
    const size_t len = be32(d + pos);
    if (len > n - pos - 12) break;
    if (std::memcmp(d + pos + 4, "iCCP", 4) != 0)
      out->insert(out->end(), d + pos, d + pos + 12 + len);
    pos += 12 + len;
  }
}

int exif_orientation(const uint8_t* t, size_t n) {
  if (n < 8) return 1;
  bool little;
  if (t[0] == 'I' && t[1] == 'I')
    little = true;
  else if (t[0] == 'M' && t[1] == 'M')
    little = false;
  else
    return 1;
  auto u16 = [&](size_t off) { return little ? le16(t + off) : be16(t + off); };
  auto u32 = [&](size_t off) { return little ? le32(t + off) : be32(t + off); };
  if (u16(2) != 42) return 1;
  const size_t ifd = u32(4);
  if (ifd > n - 2 || ifd < 8) return 1;
  const size_t count = u16(ifd);
  for (size_t i = 0; i < count; ++i) {
    const size_t e = ifd + 2 + i * 12;
    if (e + 12 > n) return 1;
    if (u16(e) == 0x0112 && u16(e + 2) == 3) {  // Orientation, SHORT
      const int v = u16(e + 8);
      return (v >= 1 && v <= 8) ? v : 1;
    }
  }
  return 1;
}

}  // namespace zsclip::detail
