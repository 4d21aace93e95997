"""dfc.store"""
