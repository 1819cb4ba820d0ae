#pragma once
// RINGLOADER_TEST_UNDER_SANITIZER: defined in ASan/UBSan and TSan builds, whose runtimes need
// descriptors and memory of their own - tests that take those away from a process skip there.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define RINGLOADER_TEST_UNDER_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define RINGLOADER_TEST_UNDER_SANITIZER 1
#endif
#endif
