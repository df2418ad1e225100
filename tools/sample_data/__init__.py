"""The synthetic sample data of Rostock virtuell (`twin sample-data`).

A deterministic world at the real coordinates (EPSG:25833, DHHN2016 heights) over the three
scenes' extent, written in the shape of the real LAiV M-V products: CityGML 1.0 LoD2 building
tiles, LAS 1.4 LAZ tiles, the planned Warnowbrücke (CityGML 2.0) and WarnowQuartier, and
world.json. Modules, in the order data flows:

- :mod:`~tools.sample_data.world`: the tables of places, the river, streets and terrain
  parameters, and :class:`World` (terrain heights, river polygon, everything placed);
- :mod:`~tools.sample_data.shapes`: LoD2 building bodies as closed shells (pure geometry);
- :mod:`~tools.sample_data.layout`: districts, buildings and vegetation;
- :mod:`~tools.sample_data.bridge`: the planned bridge's solids, the existing bridges;
- :mod:`~tools.sample_data.citygml`, :mod:`~tools.sample_data.lidar`: the writers;
- :mod:`~tools.sample_data.generate`: the atomic, deterministic folder;
- :mod:`~tools.sample_data.command`: the ``twin sample-data`` command.
"""

# The modules are imported where they are used: `twin` starts without loading the generator.
DEFAULT_DENSITY = 1.0
"""LiDAR pulses per square metre by default (returns are a few percent more)."""
MAX_DENSITY = 50.0
