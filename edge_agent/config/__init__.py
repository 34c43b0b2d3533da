"""Configuration: ``agent.yaml``, device profiles, and the sections shared with the replay tools.

Every problem is reported with file, line and field path, and what to do.
"""

from edge_agent.config.loader import LoadedConfig, device_spec, load_config, load_profile, load_profiles
from edge_agent.config.model import AgentConfig, AgentSection, AnalyticsSection, Device, agent_config_model
from edge_agent.config.oee import OeeSection, ShiftSchedule
from edge_agent.config.types import Duration, parse_duration
from edge_agent.config.yaml_source import ConfigError

__all__ = [
    "AgentConfig",
    "AgentSection",
    "AnalyticsSection",
    "ConfigError",
    "Device",
    "Duration",
    "LoadedConfig",
    "OeeSection",
    "ShiftSchedule",
    "agent_config_model",
    "device_spec",
    "load_config",
    "load_profile",
    "load_profiles",
    "parse_duration",
]
