// ct2_stream: CTranslate2 one line at a time, for bench.py's batch-1 latency.
//
//   ct2_stream MODEL_DIR COMPUTE_TYPE INTRA_THREADS BEAM MAX_DECODING_LENGTH
//
// Reads a line of space-separated source tokens, translates it alone (one
// translate_batch call with one example), writes the target tokens space-separated
// and flushes, then reads the next line. ct2-translator cannot be timed this way: it
// writes a line's translation only after it has read the next line (or end of input).
// The options not given here are TranslationOptions' defaults, which are also
// ct2-translator's defaults. bench.py builds this against the peer's install prefix.
#include <iostream>
#include <string>

#include <ctranslate2/translator.h>
#include <ctranslate2/utils.h>

int main(int argc, char* argv[]) {
  if (argc != 6) {
    std::cerr << "usage: ct2_stream MODEL_DIR COMPUTE_TYPE INTRA_THREADS BEAM "
                 "MAX_DECODING_LENGTH" << std::endl;
    return 2;
  }
  ctranslate2::models::ModelLoader loader(argv[1]);
  loader.device = ctranslate2::Device::CPU;
  loader.compute_type = ctranslate2::str_to_compute_type(argv[2]);
  loader.num_replicas_per_device = 1;
  ctranslate2::ReplicaPoolConfig pool;
  pool.num_threads_per_replica = std::stoul(argv[3]);
  ctranslate2::Translator translator(loader, pool);

  ctranslate2::TranslationOptions options;
  options.beam_size = std::stoul(argv[4]);
  options.max_decoding_length = std::stoul(argv[5]);

  std::string line;
  while (std::getline(std::cin, line)) {
    const auto results = translator.translate_batch({ctranslate2::split_tokens(line)}, options);
    std::cout << ctranslate2::join_tokens(results[0].output()) << std::endl;  // flushes
  }
  return 0;
}
