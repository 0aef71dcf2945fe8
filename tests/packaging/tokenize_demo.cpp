// Consumer of zsclip::core through add_subdirectory: prints the ids of its argument.
#include <zsclip/tokenizer.h>
#include <zsclip/version.h>

#include <iostream>

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  zsclip::Tokenizer tok = zsclip::Tokenizer::from_file(argv[1]);
  std::cout << zsclip::version();
  for (int32_t id : tok.encode_with_specials(argv[2])) std::cout << " " << id;
  std::cout << "\n";
  return 0;
}
