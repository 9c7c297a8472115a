"""pytest set-up shared by the tests."""
# Hypothesis example counts: 'ci' by default (small, no deadline: the CPU is shared), 'long' for a local run
# (pytest --hypothesis-profile long; the option is hypothesis' own pytest plugin's).
try:
    from hypothesis import settings
except ImportError:  # the test extras are not installed: the Hypothesis tests fail on their own import
    settings = None
else:
    settings.register_profile('ci', max_examples=25, deadline=None)
    settings.register_profile('long', max_examples=1000, deadline=None)
    settings.load_profile('ci')


def pytest_configure(config):
    if settings is not None:
        settings.load_profile(config.getoption('--hypothesis-profile', None) or 'ci')
