/* Unit tests for -p and --connect specs (runtime/monitor.c,
 * monitor_check_spec): an address that is not IPv4, or anything more or
 * less than the spec, is a usage error before anything starts; host port
 * 0 asks the kernel for a port. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "testutil.h"

#include "monitor.h"

/* Every spec is a usage error, and none gives a host port. */
static void assert_specs_refused(const char *const *bad, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		slate_error_t err = { 0 };
		if (monitor_check_spec(bad[i], &err) == 0)
			fail_msg("`%s` accepted", bad[i]);
		assert_int_equal(err.kind, SLATE_EXIT_USAGE);
		assert_int_equal(monitor_spec_host_port(bad[i]), 0);
	}
}

static void test_bad_addresses_are_usage_errors(void **state)
{
	static const char *const bad[] = { "999.1.1.1:8080:80",
					   "1.2.3:8080:80",
					   "127.0.0.1.1:80:80",
					   "127.0.0.1:65536:80",
					   "127.0.0.1:80:0",
					   "3306=999.0.0.1:3306",
					   "1.2.3.4.5:3306=127.0.0.1:3306",
					   "8080:80:90" };

	(void)state;
	assert_specs_refused(bad, sizeof(bad) / sizeof(bad[0]));
}

/* Each of these sscanf read as a valid spec (found by fuzz_spec; the
 * inputs are in fuzz/regress/spec too). */
static void test_whole_spec_is_parsed(void **state)
{
	static const char *const bad[] = { "127.0.0.1:8080:80xyz",
					   "8080:80 ",
					   " 8080:80",
					   "+8080:80",
					   "8080:-80",
					   "8080:99999999999999999999",
					   "1:19=\xb8:",
					   "3306=127.0.0.1:3306junk",
					   "3306=127.0.0.1:",
					   "=127.0.0.1:3306",
					   ":8080:80",
					   "127.0.0.1::80",
					   "",
					   ":" };

	(void)state;
	assert_specs_refused(bad, sizeof(bad) / sizeof(bad[0]));
}

static void test_good_specs(void **state)
{
	static const char *const good[] = { "127.0.0.1:8080:80",   "8080:80",
					    "127.0.0.1:0:80",      "0.0.0.0:443:443",
					    "3306=127.0.0.1:3306", "127.0.0.2:25=10.0.0.1:25" };

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		slate_error_t err = { 0 };
		if (monitor_check_spec(good[i], &err) != 0)
			fail_msg("`%s` refused: %s", good[i], err.msg);
	}
	assert_int_equal(monitor_spec_host_port("127.0.0.1:0:80"), 0);
	assert_int_equal(monitor_spec_host_port("127.0.0.1:8080:80"), 8080);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_addresses_are_usage_errors),
		cmocka_unit_test(test_whole_spec_is_parsed),
		cmocka_unit_test(test_good_specs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
