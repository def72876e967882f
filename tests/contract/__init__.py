import pytest

# The shared suites live in plain modules: let pytest explain their failed asserts.
pytest.register_assert_rewrite(
    "tests.contract.calendar_contract",
    "tests.contract.email_contract",
    "tests.contract.calendar_timezones",
)
pytest.register_assert_rewrite("tests.contract.erp_contract")
