from .nc_curves import load_nc_records, plot_nc_curves

__all__ = ['load_nc_records', 'plot_nc_curves']
