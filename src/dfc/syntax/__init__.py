"""dfc.syntax"""
