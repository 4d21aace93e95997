"""dfc.runtime"""
