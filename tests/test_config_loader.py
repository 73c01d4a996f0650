import collections
import json
import textwrap

import pytest
import yaml

from bollydog.config import ModuleRef, load_config, loads_config
from bollydog.config import loader as loader_mod
from bollydog.errors import ConfigError

SEED = """\
example:
  app: !module example.app.ExampleService
  handlers:
    - example.handler
  unit_of_work:
    module: !module bollydog.adapters.memory.MemoryUnitOfWork
    url: ${DATABASE_URL:sqlite+aiosqlite:///example.db}
  protocol:
    module: !module bollydog.adapters.memory.MemoryProtocol
http:
  app: !module bollydog.entrypoint.http.app.HttpService
  port: ${BOLLYDOG_HTTP_SERVICE_PORT:8000}
"""

LOADERS = [loader_mod._PyConfigLoader]
if hasattr(loader_mod, "_CConfigLoader"):
    LOADERS.append(loader_mod._CConfigLoader)


@pytest.fixture(params=LOADERS, ids=lambda cls: cls.__name__)
def both_loaders(request, monkeypatch):
    """Run a test with the pure-Python and the libyaml loader (they report styles differently)."""
    monkeypatch.setattr(loader_mod, "_ConfigLoader", request.param)
    return request.param


def load(text, **env):
    return loads_config(textwrap.dedent(text), source="cfg.yaml", environ=env)


# -- files and shapes --------------------------------------------------------------------------


def test_seed_config_from_file(tmp_path, both_loaders):
    path = tmp_path / "bollydog.yaml"
    path.write_text(SEED)
    cfg = load_config(path, environ={})
    assert cfg["example"]["app"] == ModuleRef("example.app.ExampleService")
    assert cfg["example"]["app"].key == "example.app"
    assert cfg["example"]["handlers"] == ["example.handler"]
    assert cfg["example"]["unit_of_work"]["url"] == "sqlite+aiosqlite:///example.db"
    assert cfg["http"]["port"] == 8000
    cfg = load_config(str(path), environ={"BOLLYDOG_HTTP_SERVICE_PORT": "9001"})
    assert cfg["http"]["port"] == 9001


def test_yml_extension_and_environ_default(tmp_path, monkeypatch):
    path = tmp_path / "c.yml"
    path.write_text("a:\n  b: ${BOLLYDOG_TEST_VAR_X}\n")
    monkeypatch.setenv("BOLLYDOG_TEST_VAR_X", "from-os-environ")
    assert load_config(path) == {"a": {"b": "from-os-environ"}}


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="not found.*nope.yaml"):
        load_config(tmp_path / "nope.yaml")


def test_unreadable_path_and_bad_extension(tmp_path):
    (tmp_path / "dir.yaml").mkdir()
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "dir.yaml")
    (tmp_path / "c.toml").write_text("a = 1")
    with pytest.raises(ConfigError, match="unsupported"):
        load_config(tmp_path / "c.toml")


def test_non_utf8_file(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"a: \xff\xfe\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(tmp_path / "c.yaml")


@pytest.mark.parametrize(
    "text, got", [("- a\n- b\n", "list"), ("just text\n", "str"), ("", "empty"), ("# c\n", "empty")]
)
def test_top_level_must_be_mapping(text, got, both_loaders):
    with pytest.raises(ConfigError, match=f"top level must be a mapping, got .*{got}"):
        loads_config(text)


def test_json_top_level_must_be_mapping():
    with pytest.raises(ConfigError, match="mapping, got list"):
        loads_config("[1, 2]", fmt="json")


def test_unknown_format_is_a_programming_error():
    with pytest.raises(ValueError):
        loads_config("a: 1", fmt="toml")


# -- parse errors ------------------------------------------------------------------------------


def test_yaml_parse_error_gives_line_and_column(both_loaders):
    text = "a:\n  b: 1\n  c: [1, 2\nd: 3\n"
    with pytest.raises(ConfigError) as info:
        loads_config(text, source="conf.yaml")
    assert str(info.value).startswith("conf.yaml:4:")


def test_yaml_bad_indentation_error(both_loaders):
    with pytest.raises(ConfigError, match=r"^x\.yaml:2:\d+: "):
        loads_config("a: 1\n  b: 2\n", source="x.yaml")


def test_yaml_unknown_tag_and_multiple_documents(both_loaders):
    with pytest.raises(ConfigError, match=r"^<string>:2:\d+: .*!foo"):
        loads_config("a: 1\nb: !foo x\n")
    with pytest.raises(ConfigError, match=r"^<string>:2:1: .*single document"):
        loads_config("a: 1\n---\nb: 2\n")


def test_json_parse_error_gives_line_and_column(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{\n  "a": 1,\n  "b": \n}\n')
    with pytest.raises(ConfigError, match=r"c\.json:4:1: invalid JSON"):
        load_config(path)


# -- !module -----------------------------------------------------------------------------------


def test_module_tag_resolves_lazily_to_real_objects(both_loaders):
    cfg = load("""
        a: !module json.dumps
        b: !module collections:OrderedDict
        c: !module os.path
        d: !module collections.abc.Mapping
        e: !module   json:JSONDecoder.decode
        missing: !module no_such_pkg_bollydog.Thing
    """)
    assert isinstance(cfg["a"], ModuleRef) and cfg["a"].path == "json.dumps"
    assert cfg["a"].resolve() is json.dumps
    assert cfg["b"].resolve() is collections.OrderedDict
    assert cfg["c"].resolve().__name__ in {"posixpath", "ntpath"}
    assert cfg["d"].resolve() is collections.abc.Mapping
    assert cfg["e"].resolve() is json.JSONDecoder.decode
    # Loading succeeded although this one cannot be imported: resolution is lazy.
    assert cfg["missing"].path == "no_such_pkg_bollydog.Thing"


def test_module_ref_is_frozen_and_compares_by_path():
    ref = ModuleRef("json.dumps", key="a.b")
    with pytest.raises(AttributeError):
        ref.path = "x"  # type: ignore[misc]
    assert ref == ModuleRef("json.dumps") and hash(ref) == hash(ModuleRef("json.dumps"))


def test_unknown_module_error_names_path_and_key(both_loaders):
    cfg = load("""
        svc:
          parts:
            - !module no_such_pkg_bollydog.sub.Thing
    """)
    ref = cfg["svc"]["parts"][0]
    with pytest.raises(ConfigError) as info:
        ref.resolve()
    msg = str(info.value)
    assert "no_such_pkg_bollydog.sub.Thing" in msg
    assert "svc.parts.0" in msg and "cfg.yaml" in msg
    assert "no module named 'no_such_pkg_bollydog'" in msg


def test_missing_attribute_error(both_loaders):
    ref = load("app: !module json.no_such_thing\n")["app"]
    expected = r"json\.no_such_thing.*key 'app'.*'json' has no attribute"
    with pytest.raises(ConfigError, match=expected):
        ref.resolve()
    with pytest.raises(ConfigError, match="has no attribute 'Nope'"):
        ModuleRef("collections:OrderedDict.Nope").resolve()
    with pytest.raises(ConfigError, match="no module named 'no_such_mod_bollydog'"):
        ModuleRef("no_such_mod_bollydog:X").resolve()


def test_broken_import_inside_module_is_reported_not_hidden(tmp_path, monkeypatch):
    (tmp_path / "bollydog_broken_mod.py").write_text("import no_such_dependency_bollydog\nX = 1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ConfigError, match="importing 'bollydog_broken_mod' failed.*no_such_dep"):
        ModuleRef("bollydog_broken_mod.X", key="k").resolve()
    (tmp_path / "bollydog_raising_mod.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="RuntimeError: boom"):
        ModuleRef("bollydog_raising_mod:X").resolve()


@pytest.mark.parametrize(
    "bad", ["!module", "!module ''", "!module 'a..b'", "!module 'a:b:c'", "!module 1x"]
)
def test_invalid_module_path_rejected_at_load(bad, both_loaders):
    with pytest.raises(ConfigError, match="key 'x'"):
        loads_config(f"x: {bad}\n")


def test_module_tag_on_collection_rejected(both_loaders):
    with pytest.raises(ConfigError, match=r"^<string>:1:\d+: !module expects a dotted path"):
        loads_config("x: !module [a, b]\n")


def test_env_substitution_inside_module_path(both_loaders):
    cfg = load("a: !module ${MOD:json}.${FN}\n", FN="loads")
    assert cfg["a"] == ModuleRef("json.loads") and cfg["a"].resolve() is json.loads


# -- environment substitution ------------------------------------------------------------------


def test_several_references_in_one_string(both_loaders):
    text = "url: redis://${HOST:localhost}:${PORT:6379}/0\n"
    assert load(text) == {"url": "redis://localhost:6379/0"}
    assert load(text, HOST="cache", PORT="7000") == {"url": "redis://cache:7000/0"}


def test_defaults_empty_default_and_escape(both_loaders):
    cfg = load(r"""
        empty: ${UNSET:}
        empty_set: ${SET_EMPTY}
        colon: ${UNSET:a:b:c}
        escaped: $${NOT_A_VAR} and $${X:y}
        mixed: $${A}${B:b}
        dollars: price $5 and $$ ok
        set_wins: ${HOST:default}
    """, SET_EMPTY="", HOST="real")
    assert cfg == {
        "empty": "",
        "empty_set": "",
        "colon": "a:b:c",
        "escaped": "${NOT_A_VAR} and ${X:y}",
        "mixed": "${A}b",
        "dollars": "price $5 and $$ ok",
        "set_wins": "real",
    }


def test_whole_value_reference_is_retyped(both_loaders):
    cfg = load("""
        port: ${PORT:8000}
        debug: ${DEBUG:false}
        enabled: ${ON}
        ratio: ${RATIO:0.25}
        nothing: ${NOTHING:null}
        text: ${TEXT:hello}
        numeric_text: v${PORT:8000}
        list_like: ${LIST:[1, 2]}
        in_list:
          - ${PORT:8000}
    """, ON="yes")
    assert cfg["port"] == 8000 and type(cfg["port"]) is int
    assert cfg["debug"] is False
    assert cfg["enabled"] is True
    assert cfg["ratio"] == 0.25
    assert cfg["nothing"] is None
    assert cfg["text"] == "hello"
    assert cfg["numeric_text"] == "v8000"
    assert cfg["list_like"] == "[1, 2]"  # retyped as a scalar, never parsed as structure
    assert cfg["in_list"] == [8000]


def test_quoted_and_block_scalars_stay_strings(both_loaders):
    cfg = load("""
        single: '${PORT:8000}'
        double: "${DEBUG:true}"
        block: |-
          ${PORT:8000}
        explicit: !!str 8000
    """)
    assert cfg == {"single": "8000", "double": "true", "block": "8000", "explicit": "8000"}


def test_unset_variable_error_names_variable_and_key_path(both_loaders):
    with pytest.raises(ConfigError) as info:
        text = SEED.replace("${DATABASE_URL:sqlite+aiosqlite:///example.db}", "${DATABASE_URL}")
        loads_config(text, source="seed.yaml", environ={})
    msg = str(info.value)
    assert "'DATABASE_URL'" in msg and "example.unit_of_work.url" in msg
    assert msg.startswith("seed.yaml:7:")


def test_unset_variable_in_list_item_names_index(both_loaders):
    with pytest.raises(ConfigError, match=r"key 'http\.router_mapping\.1\.path'.*'ROUTE'"):
        load("""
            http:
              router_mapping:
                - path: /a
                - path: /b/${ROUTE}
        """)


def test_malformed_and_nested_references_rejected(both_loaders):
    with pytest.raises(ConfigError, match="malformed reference"):
        load("a: ${not closed\n")
    with pytest.raises(ConfigError, match="malformed reference"):
        load("a: ${1BAD}\n")
    with pytest.raises(ConfigError, match="malformed reference"):
        load("a: ${A:${B:c}}\n")  # a reference inside a default cannot have a default itself


def test_a_default_may_hold_plain_references(both_loaders):
    assert load("a: ${A:x-${B}-y}\n", B="bee") == {"a": "x-bee-y"}
    assert load("a: ${A:x-${B}-y}\n", A="set", B="bee") == {"a": "set"}
    with pytest.raises(ConfigError, match="'B' is not set"):
        load("a: ${A:${B}}\n")


def test_config_dir_names_the_folder_of_the_file(tmp_path, monkeypatch):
    from bollydog.config import load_config

    monkeypatch.chdir("/")
    (tmp_path / "c.yaml").write_text("db: sqlite:///${BOLLYDOG_CONFIG_DIR}/app.db\n")
    assert load_config(tmp_path / "c.yaml") == {"db": f"sqlite:///{tmp_path.resolve()}/app.db"}


def test_keys_are_not_substituted(both_loaders):
    assert load("${K}: 1\n") == {"${K}": 1}


def test_anchor_substituted_once(both_loaders):
    cfg = load("""
        base: &b
          url: $${literal}-${HOST:h}
        other: *b
        merged:
          <<: *b
          port: 1
    """)
    assert cfg["base"]["url"] == cfg["other"]["url"] == cfg["merged"]["url"] == "${literal}-h"


# -- JSON --------------------------------------------------------------------------------------


def test_json_file_with_module_strings_and_env(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({
        "example": {
            "app": "!module json.dumps",
            "handlers": ["example.handler", "!module collections:OrderedDict"],
            "url": "db://${DB_HOST:localhost}/x",
            "port": "${PORT:8000}",
            "quoted_module": "!modules not a tag",
            "count": 3,
        }
    }))
    cfg = load_config(path, environ={"DB_HOST": "db1"})
    ex = cfg["example"]
    assert ex["app"].resolve() is json.dumps and ex["app"].key == "example.app"
    assert ex["handlers"][0] == "example.handler"
    assert ex["handlers"][1].resolve() is collections.OrderedDict
    assert ex["handlers"][1].key == "example.handlers.1"
    assert ex["url"] == "db://db1/x"
    assert ex["port"] == 8000
    assert ex["quoted_module"] == "!modules not a tag"
    assert ex["count"] == 3


def test_json_unset_variable_and_bad_module(tmp_path):
    with pytest.raises(ConfigError, match=r"key 'a\.0\.b'.*'NOPE'"):
        loads_config('{"a": [{"b": "${NOPE}"}]}', fmt="json", environ={})
    text = '{"a": {"m": "!module no_such_pkg_bollydog.X"}}'
    ref = loads_config(text, fmt="json", source="c.json")
    with pytest.raises(ConfigError, match=r"c\.json.*no_such_pkg_bollydog\.X.*key 'a\.m'"):
        ref["a"]["m"].resolve()


# -- no global yaml state ----------------------------------------------------------------------


def test_global_yaml_loaders_untouched(both_loaders):
    first = load("a: !module json.dumps\n")
    second = load("a: !module json.dumps\n")
    assert first == second
    assert "!module" not in yaml.SafeLoader.yaml_constructors
    with pytest.raises(yaml.constructor.ConstructorError):
        yaml.safe_load("a: !module x")
    if hasattr(yaml, "CSafeLoader"):
        assert "!module" not in yaml.CSafeLoader.yaml_constructors
        with pytest.raises(yaml.constructor.ConstructorError):
            yaml.load("a: !module x", Loader=yaml.CSafeLoader)
    assert yaml.safe_load("port: '8000'") == {"port": "8000"}


def test_default_loader_prefers_libyaml():
    if getattr(yaml, "CSafeLoader", None) is not None:
        assert issubclass(loader_mod._ConfigLoader, yaml.CSafeLoader)
    else:
        assert issubclass(loader_mod._ConfigLoader, yaml.SafeLoader)


def test_resolve_imports_submodules_and_plain_modules():
    import xml.dom.minidom

    assert ModuleRef("xml.dom.minidom.parseString").resolve() is xml.dom.minidom.parseString
    assert ModuleRef("xml.dom.minidom:parseString").resolve() is xml.dom.minidom.parseString
    assert ModuleRef("json").resolve() is json
    with pytest.raises(ConfigError, match="no module named 'xml.dom.no_such_sub'"):
        ModuleRef("xml.dom.no_such_sub.X").resolve()
    with pytest.raises(ConfigError, match="no module named 'xml.nope'"):
        ModuleRef("xml.nope:X").resolve()


def test_retyped_value_that_yaml_cannot_build_is_a_config_error(both_loaders):
    with pytest.raises(ConfigError, match="invalid value"):
        load("d: ${D:2020-13-45}\n")
    with pytest.raises(ConfigError, match=r"key 'd'.*invalid value '2020-13-45'"):
        loads_config('{"d": "${D:2020-13-45}"}', fmt="json", environ={})
    assert load("d: ${D:2020-01-02}\n")["d"].isoformat() == "2020-01-02"
