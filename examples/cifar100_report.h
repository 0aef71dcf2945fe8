// The --report part of cifar100_zeroshot: per-class accuracy (CSV), a confusion-matrix heat map and
// a grid of sample images with their predictions (PNG, drawn with OpenCV). Nothing here is
// CLIP-specific.
#pragma once

#include <zsclip/error.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <fstream>
#include <iomanip>
#include <string>
#include <vector>

namespace cifar100 {

// One evaluated image: its true class and the five best predicted classes, best first.
struct Outcome {
  int label = 0;
  std::array<int, 5> top{};
  bool top1_correct() const { return top[0] == label; }
  bool top5_correct() const { return std::find(top.begin(), top.end(), label) != top.end(); }
};

// A sample for samples.png: the 32x32 picture (8-bit BGR, as OpenCV draws) and its outcome.
struct Sample {
  cv::Mat bgr;
  Outcome outcome;
};

// Quotes a CSV field when it needs it (a class list from a user could contain commas or quotes).
inline std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

inline void write_png(const std::string& path, const cv::Mat& image) {
  if (!cv::imwrite(path, image))
    throw zsclip::Error(zsclip::ErrorCode::kIo, "cannot write " + path);
}

// class,name,count,top1,top5 — accuracies as fractions; empty for a class without images.
inline void write_per_class_csv(const std::string& path, const std::vector<std::string>& classes,
                                const std::vector<Outcome>& outcomes) {
  std::vector<int> count(classes.size()), top1(classes.size()), top5(classes.size());
  for (const Outcome& o : outcomes) {
    ++count[o.label];
    top1[o.label] += o.top1_correct();
    top5[o.label] += o.top5_correct();
  }
  std::ofstream out(path);
  out << "class,name,count,top1,top5\n" << std::fixed << std::setprecision(4);
  for (size_t c = 0; c < classes.size(); ++c) {
    out << c << "," << csv_field(classes[c]) << "," << count[c] << ",";
    if (count[c] > 0)
      out << double(top1[c]) / count[c] << "," << double(top5[c]) / count[c];
    else
      out << ",";
    out << "\n";
  }
  if (!out.flush()) throw zsclip::Error(zsclip::ErrorCode::kIo, "cannot write " + path);
}

// Rows are true classes, columns predicted classes; each row is divided by its image count, so a
// cell is the fraction of that class's images given that prediction (the diagonal is recall).
inline void write_confusion_png(const std::string& path, int num_classes,
                                const std::vector<Outcome>& outcomes) {
  const int n = num_classes, cell = 6;
  cv::Mat counts(n, n, CV_32F, cv::Scalar(0)), rows(n, 1, CV_32F, cv::Scalar(0));
  for (const Outcome& o : outcomes) {
    counts.at<float>(o.label, o.top[0]) += 1.f;
    rows.at<float>(o.label) += 1.f;
  }
  cv::Mat fraction(n, n, CV_8U);
  for (int r = 0; r < n; ++r)
    for (int c = 0; c < n; ++c) {
      const float total = rows.at<float>(r);
      fraction.at<uint8_t>(r, c) =
          cv::saturate_cast<uint8_t>(total > 0 ? 255.f * counts.at<float>(r, c) / total : 0.f);
    }
  cv::Mat heat;
  cv::applyColorMap(fraction, heat, cv::COLORMAP_VIRIDIS);
  cv::resize(heat, heat, cv::Size(n * cell, n * cell), 0, 0, cv::INTER_NEAREST);  // crisp cells

  const int left = 70, top = 40, bottom = 60, right = 110, side = n * cell;
  cv::Mat canvas(top + side + bottom, left + side + right, CV_8UC3, cv::Scalar(255, 255, 255));
  heat.copyTo(canvas(cv::Rect(left, top, side, side)));
  const cv::Scalar ink(0, 0, 0);
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  cv::putText(canvas, "CIFAR-100 confusion (row-normalised)", {left, 25}, font, 0.6, ink, 1,
              cv::LINE_AA);
  // A tick and the class index every 10 classes, on both axes.
  for (int k = 0; k < n; k += 10) {
    const int pos = k * cell + cell / 2;
    cv::line(canvas, {left + pos, top + side}, {left + pos, top + side + 5}, ink);
    cv::line(canvas, {left - 5, top + pos}, {left, top + pos}, ink);
    const std::string label = std::to_string(k);
    cv::putText(canvas, label, {left + pos - 6, top + side + 20}, font, 0.4, ink, 1, cv::LINE_AA);
    cv::putText(canvas, label, {left - 30, top + pos + 5}, font, 0.4, ink, 1, cv::LINE_AA);
  }
  cv::putText(canvas, "predicted class", {left + side / 2 - 60, top + side + 45}, font, 0.5, ink, 1,
              cv::LINE_AA);
  // The vertical axis title: drawn horizontally on its own image, then rotated into place.
  cv::Mat title(20, 90, CV_8UC3, cv::Scalar(255, 255, 255));
  cv::putText(title, "true class", {2, 15}, font, 0.5, ink, 1, cv::LINE_AA);
  cv::rotate(title, title, cv::ROTATE_90_COUNTERCLOCKWISE);
  title.copyTo(canvas(cv::Rect(10, top + side / 2 - title.rows / 2, title.cols, title.rows)));
  // Colour bar: 100% at the top, 0% at the bottom.
  cv::Mat ramp(side, 1, CV_8U);
  for (int y = 0; y < side; ++y)
    ramp.at<uint8_t>(y) = cv::saturate_cast<uint8_t>(255.0 * (side - 1 - y) / (side - 1));
  cv::Mat bar;
  cv::applyColorMap(ramp, bar, cv::COLORMAP_VIRIDIS);
  cv::resize(bar, bar, cv::Size(20, side), 0, 0, cv::INTER_NEAREST);
  bar.copyTo(canvas(cv::Rect(left + side + 20, top, 20, side)));
  cv::putText(canvas, "100%", {left + side + 45, top + 10}, font, 0.4, ink, 1, cv::LINE_AA);
  cv::putText(canvas, "0%", {left + side + 45, top + side}, font, 0.4, ink, 1, cv::LINE_AA);
  write_png(path, canvas);
}

// Shortens `text` with "..." until it fits `width` pixels.
inline std::string fit_text(std::string text, double scale, int width) {
  int baseline = 0;
  while (text.size() > 3 &&
         cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &baseline).width > width)
    text = text.substr(0, text.size() - 4) + "...";
  return text;
}

// A grid of samples, 8 a row: the picture upscaled 4x, framed green when the top-1 prediction is
// right and red otherwise, above its true label and the three best predictions.
inline void write_samples_png(const std::string& path, const std::vector<std::string>& classes,
                              const std::vector<Sample>& samples) {
  const int per_row = 8, image = 128, cell_w = 168, line = 16, cell_h = image + 12 + 4 * line + 6;
  const int grid_rows =
      std::max<int>(1, (static_cast<int>(samples.size()) + per_row - 1) / per_row);
  cv::Mat canvas(grid_rows * cell_h, per_row * cell_w, CV_8UC3, cv::Scalar(255, 255, 255));
  const cv::Scalar green(0, 150, 0), red(0, 0, 210), grey(60, 60, 60);
  const double scale = 0.4;
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    const int x = static_cast<int>(i % per_row) * cell_w,
              y = static_cast<int>(i / per_row) * cell_h;
    const cv::Scalar verdict = s.outcome.top1_correct() ? green : red;
    cv::Mat big;
    cv::resize(s.bgr, big, cv::Size(image, image), 0, 0,
               cv::INTER_NEAREST);  // show the real 32x32 pixels
    const int ix = x + (cell_w - image) / 2, iy = y + 6;
    big.copyTo(canvas(cv::Rect(ix, iy, image, image)));
    cv::rectangle(canvas, cv::Rect(ix - 3, iy - 3, image + 6, image + 6), verdict, 3);
    int ty = iy + image + 4 + line;
    cv::putText(canvas, fit_text("true: " + classes[s.outcome.label], scale, cell_w - 8),
                {x + 4, ty}, cv::FONT_HERSHEY_SIMPLEX, scale, cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
    for (int k = 0; k < 3; ++k) {
      ty += line;
      const int cls = s.outcome.top[k];
      const std::string text = std::to_string(k + 1) + ". " + classes[cls];
      cv::putText(canvas, fit_text(text, scale, cell_w - 8), {x + 4, ty}, cv::FONT_HERSHEY_SIMPLEX,
                  scale,
                  k == 0                   ? verdict
                  : cls == s.outcome.label ? green
                                           : grey,
                  1, cv::LINE_AA);
    }
  }
  write_png(path, canvas);
}

}  // namespace cifar100
