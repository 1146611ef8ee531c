import pytest

from deconv.env import ConfigurationError, envbool, envint, envlist, envstr


@pytest.mark.parametrize("raw", ["1", "true", "TRUE", " yes ", "on"])
def test_envbool_reads_true_words(monkeypatch, raw):
    monkeypatch.setenv("FLAG", raw)
    assert envbool("FLAG", False) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off", ""])
def test_envbool_reads_false_words(monkeypatch, raw):
    monkeypatch.setenv("FLAG", raw)
    assert envbool("FLAG", True) is False


def test_envbool_rejects_a_typo_naming_the_variable(monkeypatch):
    monkeypatch.setenv("DEBUG", "flase")
    with pytest.raises(ConfigurationError, match="DEBUG='flase' is not a boolean"):
        envbool("DEBUG", True)


def test_env_helpers_fall_back_to_defaults_when_unset(monkeypatch):
    monkeypatch.delenv("UNSET_VALUE", raising=False)
    assert envbool("UNSET_VALUE", True) is True
    assert envint("UNSET_VALUE", 7) == 7
    assert envstr("UNSET_VALUE", "x") == "x"
    assert envlist("UNSET_VALUE", ["a"]) == ["a"]


def test_envint_rejects_non_integers_and_values_below_minimum(monkeypatch):
    monkeypatch.setenv("PORT", "80a")
    with pytest.raises(ConfigurationError, match="PORT='80a' is not an integer"):
        envint("PORT", 8000)
    monkeypatch.setenv("PORT", "0")
    with pytest.raises(ConfigurationError, match="below its minimum 1"):
        envint("PORT", 8000, minimum=1)
    monkeypatch.setenv("PORT", " 8080 ")
    assert envint("PORT", 8000, minimum=1) == 8080


def test_envlist_splits_on_commas_and_drops_blanks(monkeypatch):
    monkeypatch.setenv("ALLOWED_HOSTS", " deconv.fr, www.deconv.fr ,,")
    assert envlist("ALLOWED_HOSTS", []) == ["deconv.fr", "www.deconv.fr"]
