from .nc_curves import (load_nc_records, nc_curves_figure, plot_nc_curves,
                        save_nc_records)

__all__ = [
    'load_nc_records', 'save_nc_records', 'nc_curves_figure',
    'plot_nc_curves'
]
