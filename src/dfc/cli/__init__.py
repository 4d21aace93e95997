"""dfc.cli"""
